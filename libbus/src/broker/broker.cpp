// broker/broker.cpp — bus::Broker, the public face of BrokerCore (in-process or busd).
#include "bus/broker.hpp"

#include <thread>

#include "broker/broker_core.hpp"

namespace bus {

Broker::Broker() noexcept = default;
Broker::Broker(Broker&&) noexcept = default;
Broker& Broker::operator=(Broker&& other) noexcept {
  if (this != &other) {
    (void)stop();
    core_ = std::move(other.core_);
    thread_ = std::move(other.thread_);
  }
  return *this;
}
Broker::~Broker() { (void)stop(); }

Result<Broker> Broker::start(const BrokerOptions& options) {
  auto core = detail::BrokerCore::create(options);
  if (!core) return std::move(core).error();
  Broker broker;
  broker.core_ = std::move(core).value();
  detail::BrokerCore* raw = broker.core_.get();
  broker.thread_ = std::make_unique<std::thread>([raw] { (void)raw->run(); });
  return broker;
}

Status Broker::run(const BrokerOptions& options) {
  auto core = detail::BrokerCore::create(options);
  if (!core) return std::move(core).error();
  return core.value()->run();
}

void Broker::request_stop_all() noexcept { detail::BrokerCore::request_stop_all(); }

Status Broker::stop() {
  if (!core_) return {};
  core_->request_stop();
  if (thread_ && thread_->joinable()) thread_->join();
  thread_.reset();
  core_.reset();  // removes the segment
  return {};
}

bool Broker::running() const noexcept { return core_ != nullptr; }

}  // namespace bus
