#include "wire/socket_file.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstring>
#include <mutex>

namespace wire {
namespace {

// What the signal handler may read: fixed storage, no allocation. A slot is published by
// its `used` flag after its path is written, and retired by clearing the flag first.
struct Slot {
  std::atomic<bool> used{false};
  char path[sizeof(::sockaddr_un{}.sun_path)] = {};
  ::dev_t device = 0;
  ::ino_t inode = 0;
  ::timespec changed{};
};
constexpr std::size_t max_files = 16;
std::array<Slot, max_files> slots;
std::mutex slots_mutex;  // never taken by the handler
int handlers_wanted = 0;
struct ::sigaction previous_int {};
struct ::sigaction previous_term {};

// Removes `path` only if it is still the file we made. An inode number is reused as soon as
// a file is gone, so its change time (nanoseconds) tells a replacement apart.
void remove_if_ours(const char* path, ::dev_t device, ::ino_t inode,
                    const ::timespec& changed) noexcept {
  struct ::stat st {};
  if (::lstat(path, &st) == 0 && st.st_dev == device && st.st_ino == inode &&
      st.st_ctim.tv_sec == changed.tv_sec && st.st_ctim.tv_nsec == changed.tv_nsec) {
    ::unlink(path);
  }
}

extern "C" void remove_files_and_exit(int signal_number) {
  for (auto& slot : slots) {
    if (slot.used.load()) remove_if_ours(slot.path, slot.device, slot.inode, slot.changed);
  }
  ::_exit(signal_number == SIGINT ? 130 : 0);
}

}  // namespace

SocketFile::SocketFile(const Address& address, SocketFileOptions options) {
  if (address.family() != Family::local || address.is_abstract()) return;
  path_ = address.path();
  struct ::stat st {};
  if (path_.empty() || ::lstat(path_.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
    path_.clear();  // nothing of ours to remove
    return;
  }
  device_ = st.st_dev;
  inode_ = st.st_ino;
  changed_ = st.st_ctim;
  if (!options.on_signals || path_.size() >= sizeof Slot{}.path) return;
  std::lock_guard lock(slots_mutex);
  for (std::size_t i = 0; i < max_files; ++i) {
    if (slots[i].used.load()) continue;
    std::memcpy(slots[i].path, path_.c_str(), path_.size() + 1);
    slots[i].device = device_;
    slots[i].inode = inode_;
    slots[i].changed = changed_;
    slots[i].used.store(true);
    slot_ = static_cast<int>(i);
    break;
  }
  if (slot_ >= 0 && handlers_wanted++ == 0) {
    struct ::sigaction action {};
    action.sa_handler = remove_files_and_exit;
    ::sigemptyset(&action.sa_mask);
    ::sigaddset(&action.sa_mask, SIGINT);
    ::sigaddset(&action.sa_mask, SIGTERM);
    ::sigaction(SIGINT, &action, &previous_int);
    ::sigaction(SIGTERM, &action, &previous_term);
  }
}

SocketFile::~SocketFile() {
  if (slot_ >= 0) {
    std::lock_guard lock(slots_mutex);
    slots[static_cast<std::size_t>(slot_)].used.store(false);
    if (--handlers_wanted == 0) {
      ::sigaction(SIGINT, &previous_int, nullptr);
      ::sigaction(SIGTERM, &previous_term, nullptr);
    }
  }
  if (!path_.empty()) remove_if_ours(path_.c_str(), device_, inode_, changed_);
}

}  // namespace wire
