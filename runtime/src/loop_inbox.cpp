#include "coring/runtime/loop_inbox.hpp"

namespace coring::detail {

// Owns the loop's reference on its inbox; closes it when the loop goes.
class LoopInboxService final : public LoopService {
 public:
  explicit LoopInboxService(EventLoop& loop) : inbox_(new LoopInbox(loop)) {}
  ~LoopInboxService() override {
    inbox_->close();
    inbox_->release();
  }
  LoopInboxService(const LoopInboxService&) = delete;
  LoopInboxService& operator=(const LoopInboxService&) = delete;
  LoopInbox& inbox() noexcept { return *inbox_; }

 private:
  LoopInbox* inbox_;
};

LoopInbox& LoopInbox::of(EventLoop& loop) {
  return loop.service<LoopInboxService>().inbox();
}

void LoopInbox::push(InboxNode* node) noexcept {
  std::unique_lock lock(mutex_);
  if (closed_) {
    lock.unlock();
    node->release_node(node);  // its loop is gone, and so is its awaiter
    return;
  }
  node->next_ready = nullptr;
  if (tail_ == nullptr) {
    head_ = node;
  } else {
    tail_->next_ready = node;
  }
  tail_ = node;
  if (drain_posted_) return;
  drain_posted_ = true;
  try {
    // Under the mutex: close() cannot run (nor the loop go) until this returns.
    loop_->post([this] { drain(); });
  } catch (...) {
    // The loop is shutting down (or out of memory): close() releases the node.
  }
}

void LoopInbox::drain() noexcept {
  InboxNode* nodes = nullptr;
  {
    std::lock_guard lock(mutex_);
    nodes = head_;
    head_ = tail_ = nullptr;
    drain_posted_ = false;
  }
  while (nodes != nullptr) {
    InboxNode* next = nodes->next_ready;
    if (nodes->waiter != nullptr) nodes->wake(nodes->waiter);
    nodes->release_node(nodes);
    nodes = next;
  }
}

void LoopInbox::close() noexcept {
  InboxNode* nodes = nullptr;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    nodes = head_;
    head_ = tail_ = nullptr;
  }
  // Their tasks are gone (services go after them): nobody to wake.
  while (nodes != nullptr) {
    InboxNode* next = nodes->next_ready;
    nodes->release_node(nodes);
    nodes = next;
  }
}

}  // namespace coring::detail
