// verbs.hpp — the verbs of the `bus` CLI. Each verb lives in its own cmd_<verb>.cpp and exposes
// one setup function; adding a verb is that file, one line in kVerbs (main.cpp) and one in
// tools/CMakeLists.txt.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string_view>

namespace bus::cli {

/// Runs a verb once its flags are parsed; returns the process exit code.
using VerbRunner = std::function<int()>;
/// Declares a verb's flags and positionals on `command` (bound to state the runner owns) and
/// returns its runner.
using VerbSetup = VerbRunner (*)(CLI::App& command);

struct Verb {
  std::string_view name;
  std::string_view summary;
  VerbSetup setup;
};

VerbRunner setup_pub(CLI::App& command);
VerbRunner setup_sub(CLI::App& command);
VerbRunner setup_req(CLI::App& command);
VerbRunner setup_reply(CLI::App& command);
VerbRunner setup_bench(CLI::App& command);
VerbRunner setup_stream(CLI::App& command);
VerbRunner setup_consumer(CLI::App& command);
VerbRunner setup_server(CLI::App& command);
VerbRunner setup_top(CLI::App& command);
VerbRunner setup_events(CLI::App& command);
VerbRunner setup_bridge(CLI::App& command);

}  // namespace bus::cli
