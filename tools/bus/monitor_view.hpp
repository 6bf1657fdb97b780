// monitor_view.hpp — the text views of a bus snapshot that `bus server` and `bus top` share:
// aligned tables of clients and subscriptions, sorted by NATS's keys, with rates between two
// snapshots when there are two.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bus/monitor.hpp"

namespace bus::cli {

/// Columns of text, aligned when rendered (numbers right, text left).
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void add(std::vector<std::string> row);
  std::string render() const;
  std::size_t rows() const noexcept { return rows_.size(); }

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

/// 1234567 -> "1,234,567".
std::string grouped(std::uint64_t n);
/// 1536 -> "1.5 KiB".
std::string bytes_text(std::uint64_t n);
/// A per-second rate, "-" when there is no earlier snapshot.
std::string rate_text(double per_second, bool known);

/// Rates of one snapshot against an earlier one (`before` null: no rates).
struct Rates {
  const monitor::BusSnapshot* before = nullptr;
  double seconds = 0;
};

/// The clients, sorted by `sort` (monitor::ConnzOptions keys), the first `top` (0: all).
Table clients_table(const monitor::BusSnapshot& now, const Rates& rates, const std::string& sort, std::size_t top);
/// The subscriptions, sorted by `sort` (monitor::SubszOptions keys), the first `top` (0: all).
Table subscriptions_table(const monitor::BusSnapshot& now, const Rates& rates, const std::string& sort,
                          std::size_t top);
/// Whether `key` is a sort key of clients_table / subscriptions_table.
bool valid_client_sort(const std::string& key);
bool valid_subscription_sort(const std::string& key);

/// `bus server info`'s page.
std::string info_page(const monitor::BusSnapshot& s);
/// The two summary lines at the top of `bus top`.
std::string summary_lines(const monitor::BusSnapshot& now, const Rates& rates);

}  // namespace bus::cli
