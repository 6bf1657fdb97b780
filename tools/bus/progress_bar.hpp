// progress_bar.hpp — a one-line progress bar on stderr for long runs on a terminal (bench,
// replays): redrawn at most every 100 ms, cleared before anything else is printed.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace bus::cli {

/// 1234567 -> "1,234,567".
inline std::string commas(std::uint64_t value) {
  std::string digits = std::to_string(value);
  std::string out;
  out.reserve(digits.size() + digits.size() / 3);
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// A bar on stderr while a long run works; only on a terminal (the caller decides).
class ProgressBar {
 public:
  ProgressBar(bool enabled, std::uint64_t total, std::string label)
      : enabled_(enabled), total_(std::max<std::uint64_t>(total, 1)), label_(std::move(label)) {}
  void draw(std::uint64_t done) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now < next_draw_) return;
    next_draw_ = now + std::chrono::milliseconds(100);
    constexpr int kWidth = 40;
    done = std::min(done, total_);
    const int filled = static_cast<int>(done * kWidth / total_);
    std::string bar(static_cast<std::size_t>(filled), '=');
    if (filled < kWidth) bar += '>' + std::string(static_cast<std::size_t>(kWidth - filled - 1), ' ');
    std::fprintf(stderr, "\r%s [%s] %3d%% %s/%s", label_.c_str(), bar.c_str(),
                 static_cast<int>(done * 100 / total_), commas(done).c_str(),
                 commas(total_).c_str());
    std::fflush(stderr);
    drawn_ = true;
  }
  void clear() {
    if (!drawn_) return;
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    drawn_ = false;
  }

 private:
  bool enabled_;
  std::uint64_t total_;
  std::string label_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point next_draw_{};
};

}  // namespace bus::cli
