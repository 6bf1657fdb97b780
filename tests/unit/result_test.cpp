// bus::Result misuse (bus/result.hpp): reading the value of an error, or the error of a value,
// is a clear failure (one line naming the call and the error held, then abort), never an
// exception (libbus throws nothing) nor a read of a value that is not there.
#include <gtest/gtest.h>

#include <string>

#include "bus/result.hpp"

namespace bus {
namespace {

Result<std::string> failed() { return make_error(Errc::timeout, "no reply on 'svc.x' within 1 s"); }

TEST(ResultDeathTest, should_name_the_call_and_the_error_when_the_value_of_an_error_is_read) {
  EXPECT_DEATH((void)failed().value(), R"(bus: Result::value\(\) of an error: \[timeout\] no reply on 'svc.x' within 1 s)");
  auto r = failed();
  EXPECT_DEATH((void)r->size(), R"(Result::operator-> of an error: \[timeout\])");
  EXPECT_DEATH((void)*r, R"(Result::operator\* of an error)");
}

TEST(ResultDeathTest, should_fail_clearly_when_the_error_of_a_success_is_read) {
  Result<int> ok = 7;
  EXPECT_DEATH((void)ok.error(), R"(bus: Result::error\(\) of a success)");
  Status fine;
  EXPECT_DEATH((void)fine.error(), R"(Result::error\(\) of a success)");
}

TEST(Result, should_hand_out_what_it_holds_when_used_as_documented) {
  auto r = failed();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::timeout);
  Result<std::string> v = std::string("value");
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, "value");
  EXPECT_EQ(v->size(), 5u);
  EXPECT_EQ(std::move(v).value(), "value");
}

}  // namespace
}  // namespace bus
