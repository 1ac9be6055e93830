#include "wire/http/server_stats.hpp"

namespace wire::http {
namespace {

constexpr std::size_t shard_count = 16;  // a power of two above the usual worker count
constexpr int lowest_status = 100;
constexpr int highest_status = 599;
// Slot 0 counts the statuses outside 100-599; slot s - 99 counts status s.
constexpr std::size_t status_slots = highest_status - lowest_status + 2;

// Each thread takes the next shard the first time it counts: the workers of one server
// (started one after another) land on different shards.
std::atomic<unsigned> next_shard{0};
thread_local int this_threads_shard = -1;

}  // namespace

// One thread's counters (shared by threads only when there are more than shard_count), on
// cache lines of their own.
struct alignas(64) ServerStats::Shard {
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> by_status[status_slots];  // value-initialised: zeros
};

ServerStats::ServerStats()
    : shards_(new Shard[shard_count]),
      started_(std::chrono::system_clock::now()),
      started_steady_(std::chrono::steady_clock::now()) {}

ServerStats::~ServerStats() = default;

ServerStats::Shard& ServerStats::shard() noexcept {
  if (this_threads_shard < 0) {
    this_threads_shard =
        static_cast<int>(next_shard.fetch_add(1, std::memory_order_relaxed) % shard_count);
  }
  return shards_[static_cast<std::size_t>(this_threads_shard)];
}

void ServerStats::add_received(std::uint64_t bytes) noexcept {
  shard().received.fetch_add(bytes, std::memory_order_relaxed);
}

void ServerStats::add_sent(std::uint64_t bytes) noexcept {
  shard().sent.fetch_add(bytes, std::memory_order_relaxed);
}

void ServerStats::add_response(int status, std::uint64_t bytes_sent) noexcept {
  const std::size_t slot = status >= lowest_status && status <= highest_status
                               ? static_cast<std::size_t>(status - lowest_status + 1)
                               : 0;
  Shard& mine = shard();
  mine.by_status[slot].fetch_add(1, std::memory_order_relaxed);
  mine.sent.fetch_add(bytes_sent, std::memory_order_relaxed);
}

ServerStats::Snapshot ServerStats::snapshot() const {
  Snapshot s;
  s.closed = closed.load(std::memory_order_acquire);
  s.accepted = accepted.load(std::memory_order_relaxed);
  s.open = s.accepted > s.closed ? s.accepted - s.closed : 0;
  std::uint64_t counts[status_slots] = {};
  for (std::size_t i = 0; i < shard_count; ++i) {
    const Shard& shard = shards_[i];
    s.received += shard.received.load(std::memory_order_relaxed);
    s.sent += shard.sent.load(std::memory_order_relaxed);
    for (std::size_t slot = 0; slot < status_slots; ++slot) {
      counts[slot] += shard.by_status[slot].load(std::memory_order_relaxed);
    }
  }
  for (std::size_t slot = 0; slot < status_slots; ++slot) {
    if (counts[slot] == 0) continue;
    const int status = slot == 0 ? 0 : static_cast<int>(slot) + lowest_status - 1;
    s.by_status.emplace_back(status, counts[slot]);
    s.requests += counts[slot];
  }
  s.started = started_;
  s.uptime = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                                  started_steady_);
  return s;
}

}  // namespace wire::http
