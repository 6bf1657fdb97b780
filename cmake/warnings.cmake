# Warnings every bus target builds with; warnings are errors in CI (BUS_WERROR=ON).
option(BUS_WERROR "Treat warnings as errors" OFF)
function(bus_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                                           -Wcast-align -Wunused -Woverloaded-virtual)
  if(BUS_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
