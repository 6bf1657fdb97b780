# install.cmake — what `cmake --install` puts under the prefix, and the Debian package (cpack):
#   lib/libbus.so.0 (+ .so, .a)         bus::bus (shared), bus::bus_static
#   lib/libbus_bridge.a                  bus::bridge, the NATS bridge (when nats.c was found)
#   include/bus/*.hpp, bus/bus.h         the C++ and C APIs
#   bin/busd, bin/bus                    the broker and the CLI (linked statically to libbus)
#   lib/cmake/bus/busConfig*.cmake       find_package(bus)
#   lib/pkgconfig/bus.pc                 pkg-config --cflags --libs bus
#   share/doc/bus/                       README, the docs
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS bus_shared bus EXPORT busTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(TARGET bus_bridge)
  install(TARGETS bus_bridge EXPORT busTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/libbus/include/bus DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(BUS_BUILD_TOOLS)
  install(TARGETS busd bus_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

install(EXPORT busTargets NAMESPACE bus:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/bus)
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/busConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/busConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/bus)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/busConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)  # 0.x: a minor may change the ABI
install(FILES ${PROJECT_BINARY_DIR}/busConfig.cmake ${PROJECT_BINARY_DIR}/busConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/bus)

file(RELATIVE_PATH BUS_PC_PREFIX_FROM_PCDIR ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" BUS_PC_PREFIX_FROM_PCDIR "${BUS_PC_PREFIX_FROM_PCDIR}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/bus.pc.in ${PROJECT_BINARY_DIR}/bus.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/bus.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR})
if(EXISTS ${PROJECT_SOURCE_DIR}/python/bus)
  # The Python module (ctypes over libbus.so.0): importable once on the path, e.g. by the .deb.
  # lib/python3/dist-packages whatever the library directory (lib/x86_64-linux-gnu under /usr):
  # the directory Debian's python3 searches under /usr (and /usr/local/lib/python3.X/dist-packages
  # is per version: a prefix other than /usr needs PYTHONPATH, as docs/clients.md says).
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/python/bus DESTINATION lib/python3/dist-packages
          PATTERN __pycache__ EXCLUDE)
endif()

# cpack -G DEB: one package, bus_<version>_<arch>.deb, its runtime dependencies from the
# binaries (dpkg-shlibdeps: libcpp-httplib, libxxhash, libncurses, libstdc++, libc).
set(CPACK_PACKAGE_NAME bus)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "bus developers")
set(CPACK_PACKAGE_CONTACT "bus developers <bus@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "shared-memory message bus with NATS semantics")
set(CPACK_PACKAGE_DESCRIPTION
    "bus: NATS subjects, queue groups, request/reply, headers and JetStream-style streams over shared memory, for processes on one host. Broker (busd), CLI (bus), libbus (C++ and C) and its Python module.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "python3 (>= 3.9)")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "libboost-dev, libxxhash-dev, libcpp-httplib-dev")
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
include(CPack)
