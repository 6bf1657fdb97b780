# BUS_SANITIZE="address,undefined" (CI's second build) or "thread" (stress runs).
if(BUS_SANITIZE)
  add_compile_options(-fsanitize=${BUS_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=${BUS_SANITIZE})
endif()
