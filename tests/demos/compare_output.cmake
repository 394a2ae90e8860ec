# Runs DEMO with ARGS and fails unless its standard output equals EXPECTED exactly.
separate_arguments(_args UNIX_COMMAND "${ARGS}")
execute_process(COMMAND ${DEMO} ${_args}
  OUTPUT_VARIABLE _out ERROR_VARIABLE _err RESULT_VARIABLE _rc TIMEOUT 50)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "${DEMO} exited with ${_rc}\nstdout:\n${_out}\nstderr:\n${_err}")
endif()
file(READ ${EXPECTED} _expected)
if(NOT _out STREQUAL _expected)
  message(FATAL_ERROR "${DEMO}: output differs from the seed's\n--- expected\n${_expected}\n--- got\n${_out}")
endif()
