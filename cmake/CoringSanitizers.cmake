# Applies CORING_SANITIZE to every target in the build.
if(CORING_SANITIZE)
  string(REPLACE "," ";" _san_list "${CORING_SANITIZE}")
  add_compile_options(-fsanitize=${CORING_SANITIZE} -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=${CORING_SANITIZE})
  if("undefined" IN_LIST _san_list)
    add_compile_options(-fno-sanitize-recover=undefined)
    # UBSan's vptr check probes memory with pipe(2); the net tests run the
    # process out of file descriptors on purpose (EMFILE back-off), and there
    # the check reports false "invalid vptr" errors. Every other check stays on.
    add_compile_options(-fno-sanitize=vptr)
    add_link_options(-fno-sanitize=vptr)
  endif()
endif()
