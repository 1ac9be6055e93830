#include "wire/async/task_group.hpp"

namespace wire {

TaskGroup::TaskGroup() : loop_(EventLoop::current()) {
  if (loop_ == nullptr) {
    throw Error(std::make_error_code(std::errc::operation_not_permitted), "TaskGroup", "",
                "no EventLoop is running on this thread");
  }
}

TaskGroup::~TaskGroup() {
  // A joiner in another task (the group's owner is gone first): woken, and told.
  if (joiner_ != nullptr) {
    JoinAwaiter* waiting = std::exchange(joiner_, nullptr);
    waiting->orphaned_ = true;
    loop_->wake(waiting->node_);
  }
  // A child may be on the stack: one that closed a socket the group's owner waited on,
  // which resumed the owner inline and brought it here. Destroying that child now would
  // free the frame it is running in, so every child is cut loose and destroyed as soon as
  // this step ends, before anything else is resumed.
  if (loop_->resuming_inline()) {
    while (head_ != nullptr) {
      detail::TaskState* child = head_;
      head_ = child->group_next;
      if (head_ != nullptr) head_->group_prev = nullptr;
      child->group_next = child->group_prev = nullptr;
      child->group = nullptr;
      child->error_taken = true;  // the group's business, and the group is gone
      --running_;
      child->cancel();
      child->release();
    }
    return;
  }
  // Children may point into the frame that owns this group: none may run after it.
  while (head_ != nullptr) {
    detail::TaskState* child = head_;
    child->cancel_now();
    if (head_ == child) child_settled(child);  // its loop is gone: just let go
  }
}

void TaskGroup::adopt(detail::TaskState* state) noexcept {
  state->add_ref();
  state->group = this;
  state->group_next = head_;
  if (head_ != nullptr) head_->group_prev = state;
  head_ = state;
  ++running_;
  if (error_) state->cancel();
}

void TaskGroup::cancel() noexcept {
  // Outside run() a cancellation settles the child at once, which unlinks (and may free)
  // it: start again from the head after each one.
  for (bool again = true; again;) {
    again = false;
    for (detail::TaskState* child = head_; child != nullptr; child = child->group_next) {
      if (child->cancel_requested()) continue;
      child->cancel();
      again = true;
      break;
    }
  }
}

void TaskGroup::child_settled(detail::TaskState* child) noexcept {
  (child->group_prev != nullptr ? child->group_prev->group_next : head_) = child->group_next;
  if (child->group_next != nullptr) child->group_next->group_prev = child->group_prev;
  child->group_next = child->group_prev = nullptr;
  child->group = nullptr;
  --running_;
  if (first_settled_ == nullptr) first_settled_ = child;
  if (child->status() == detail::TaskState::Status::failed && !child->error_taken) {
    child->error_taken = true;
    if (!error_) {
      error_ = child->error();
      cancel();
    } else if (EventLoop* running_on = child->loop()) {
      running_on->report(child->error());  // a second failure: logged, not lost
    }
  }
  if (joiner_ != nullptr && satisfied(joiner_->until_)) {
    JoinAwaiter* waiting = std::exchange(joiner_, nullptr);
    loop_->wake(waiting->node_);
  }
  child->release();
}

TaskGroup::JoinAwaiter::~JoinAwaiter() {
  if (!orphaned_ && group_.joiner_ == this) group_.joiner_ = nullptr;
  if (node_.queued) loop_->unwake(node_);
}

bool TaskGroup::JoinAwaiter::await_suspend(std::coroutine_handle<> handle) {
  if (group_.joiner_ != nullptr) {
    throw Error(std::make_error_code(std::errc::device_or_resource_busy), "join task group", "",
                "another coroutine is already waiting for this group");
  }
  node_.handle = handle;
  group_.joiner_ = this;
  return true;
}

const void* TaskGroup::JoinAwaiter::await_resume() {
  if (orphaned_) {
    throw Error(std::make_error_code(std::errc::operation_canceled), "join task group", "",
                "the group was destroyed while this task waited on it");
  }
  if (until_ == Until::all && group_.error_) std::rethrow_exception(group_.error_);
  return group_.first_settled_;
}

}  // namespace wire
