// capi_test_cxx.cpp — capi_test.c compiled as C++: bus/bus.h must be valid in both languages.
#include "capi_test.c"
