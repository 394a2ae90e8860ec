# coring_set_warnings(target): the project's warning set; -Werror when CORING_WERROR is on (CI).
function(coring_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor)
  if(CORING_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
