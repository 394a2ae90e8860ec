# Installs headers, libraries and a CMake package so that users can write
# find_package(coring) and link coring::coring.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(DIRECTORY include/ runtime/include/ sync/include/ net/include/ actor/include/ testing/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS coring coring_runtime coring_sync coring_net coring_actor coring_testing EXPORT coringTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(EXPORT coringTargets NAMESPACE coring:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/coring)
install(FILES cmake/FindLiburing.cmake DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/coring)

configure_package_config_file(cmake/coringConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/coringConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/coring)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/coringConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/coringConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/coringConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/coring)
