// api.cpp — the free functions of the public API.
#include <cstdio>
#include <cstdlib>

#include "bus/bus.hpp"
#include "subject/subject.hpp"

namespace bus {

void result_misuse(const char* call, const Error* held) noexcept {
  if (held != nullptr) {
    std::fprintf(stderr, "bus: Result::%s of an error: [%s] %s (check the Result before using its value)\n", call,
                 errc_name(held->code), held->message.c_str());
  } else {
    std::fprintf(stderr, "bus: Result::%s of a success: there is no error to read\n", call);
  }
  std::abort();
}

const char* errc_name(Errc code) noexcept {
  switch (code) {
    case Errc::ok: return "ok";
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::invalid_subject: return "invalid_subject";
    case Errc::payload_too_large: return "payload_too_large";
    case Errc::broker_not_running: return "broker_not_running";
    case Errc::broker_already_running: return "broker_already_running";
    case Errc::broker_gone: return "broker_gone";
    case Errc::segment_corrupt: return "segment_corrupt";
    case Errc::version_mismatch: return "version_mismatch";
    case Errc::permission_denied: return "permission_denied";
    case Errc::resource_exhausted: return "resource_exhausted";
    case Errc::timeout: return "timeout";
    case Errc::closed: return "closed";
    case Errc::io_error: return "io_error";
    case Errc::protocol_error: return "protocol_error";
    case Errc::no_responders: return "no_responders";
    case Errc::already_exists: return "already_exists";
    case Errc::journal_corrupt: return "journal_corrupt";
    case Errc::not_found: return "not_found";
    case Errc::expectation_failed: return "expectation_failed";
  }
  return "unknown";
}

Status validate_publish_subject(std::string_view subject) {
  return detail::validate_publish_subject(subject);
}

Status validate_pattern(std::string_view pattern) { return detail::validate_subscribe_subject(pattern); }

bool subject_matches(std::string_view pattern, std::string_view subject) noexcept {
  return detail::subject_matches(pattern, subject);
}

}  // namespace bus
