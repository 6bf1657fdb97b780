# BUS_SANITIZE="address,undefined" (CI's second build) or "thread" (CI's third: the
# multi-threaded and ring tests under ThreadSanitizer).
if(BUS_SANITIZE)
  add_compile_options(-fsanitize=${BUS_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=${BUS_SANITIZE})
  if(BUS_SANITIZE MATCHES "thread")
    # GCC warns that TSan does not model atomic_thread_fence. Our fences order atomic accesses
    # only (seqlock words, Dekker flags), which TSan checks on their own, so the warning is noise.
    add_compile_options(-Wno-tsan)
  endif()
endif()
