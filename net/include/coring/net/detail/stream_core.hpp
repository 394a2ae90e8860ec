// StreamCore: the heap-stable state of a TcpStream (see service.hpp for its
// lifetime) and the multishot recv that feeds it.
//
// Receive path. The first recv() arms one multishot IORING_OP_RECV that selects
// buffers from the loop's BufferRing, limited (Linux 6.17+) to the bytes the
// connection may hold: max_buffers full buffers. The kernel ends it once that
// much has arrived, and it is armed again as the application gives buffers
// back. Each CQE carrying data is queued here (a
// buffer id and a length) until recv() hands it out as a BufferLease. The recv
// stays armed while the connection holds fewer than `max_buffers` ring buffers
// (queued + leased): that is its read-ahead. At the cap the multishot is
// cancelled and the stream is *throttled*: from then on it receives with
// single-shot recvs (one buffer each), armed only below the cap, until the
// application has given every buffer back. A multishot run can fill more
// buffers than that before its CQEs are seen (the kernel retries a multishot
// recv up to 32 times per wake-up): what arrives over the cap is copied to the
// heap and its ring buffer recycled at once ("spilled"). With the byte limit,
// what one run can bring is max_buffers buffers' worth of bytes, so the spill
// is bounded by that too (a run of small messages takes one buffer each);
// without it (older kernels) a run can bring whatever the socket had buffered
// when the cap was reached. So a peer whose data the application does not
// consume (an echo peer that never reads what is sent back) pins at most
// max_buffers ring buffers, plus that heap copy, and never the ring. Streams that keep up never
// leave the multishot fast path and never copy. A CQE without IORING_CQE_F_MORE (the kernel ended
// the multishot) re-arms too; ENOBUFS (the ring is empty) parks the stream in the NetService until
// a buffer is recycled, so an exhausted ring never turns into a busy loop. EOF and errors are
// queued behind the data received before them.
//
// Sends. Every send_all in flight is linked into the core (`sends_`), so the
// core outlives it: closing the stream cancels those sends, and each one
// wakes its task with EBADF when its CQE comes back; only then may the core
// be freed.
#pragma once

#include <cstdint>
#include <vector>

#include "coring/net/detail/service.hpp"
#include "coring/runtime/operation.hpp"

namespace coring::net {
class SendAllAwaiter;
}

namespace coring::net::detail {

class RecvOp;

class StreamCore final : public SocketCore, private Completion {
 public:
  StreamCore(NetService* svc, int fd) noexcept;
  ~StreamCore() override;

  // ---- used by RecvAwaiter ----
  [[nodiscard]] bool readable() const noexcept { return queued_ != 0 || end_ != 0; }
  // Before a recv parks: throws std::logic_error if another task is already
  // waiting on this stream, or what setting up the loop's buffer ring throws.
  void check_can_park();
  // Parks `w` until readable, arming the recv if needed.
  void park(RecvOp* w) noexcept;
  void unpark(RecvOp* w) noexcept {
    if (waiter_ == w) waiter_ = nullptr;
  }
  static constexpr int kData = 1;
  static constexpr int kEof = 2;
  // Takes the next item: fills `data/len/bid` and returns kData, or returns the
  // end status (0: none yet, kEof, or -errno).
  int pop(std::byte*& data, std::uint32_t& len, std::uint16_t& bid) noexcept;
  // Undoes a pop whose item was never leased out (a recv that lost a select):
  // the item goes back to the front, or is dropped if the stream was closed.
  void unpop(std::byte* data, std::uint32_t len, std::uint16_t bid) noexcept;

  // ---- used by BufferLease ----
  void give_back(std::uint16_t bid, std::byte* data) noexcept;

  // ---- used by SendAllAwaiter ----
  [[nodiscard]] bool can_send() const noexcept { return svc != nullptr && fd >= 0 && !orphaned; }
  void add_send(SendAllAwaiter* s) noexcept;
  void unlink_send(SendAllAwaiter* s) noexcept;
  // unlink_send(), and frees the core when `s` was all that kept an orphan alive.
  void remove_send(SendAllAwaiter* s) noexcept {
    unlink_send(s);
    if (orphaned) maybe_free();
  }

  // ---- used by TcpStream ----
  // The owner is gone or closed the stream: stop receiving, drop queued data and
  // close the fd (through the ring; at once when the loop is being torn down;
  // not at all when `keep_fd`). Frees the core when nothing else refers to it.
  void orphan(bool keep_fd) noexcept;
  std::uint32_t max_buffers = 4;
  // Ring buffers this stream holds: queued or leased.
  [[nodiscard]] std::uint32_t buffers_held() const noexcept { return ring_held_; }
  // Bytes kept on the heap because a multishot run overshot the cap (see above).
  [[nodiscard]] std::uint32_t spilled() const noexcept { return spilled_; }
  static constexpr std::uint16_t kSpilled = 0xffff;  // the bid of a heap-held item

  // Called by NetService when ring buffers are free again after ENOBUFS.
  void buffers_available() noexcept;
  bool waiting_for_buffers = false;

 private:
  struct Item {
    std::uint32_t len;
    std::uint16_t bid;  // kSpilled: the bytes are in `heap`
    std::byte* heap;
  };
  static void on_recv(Completion* c, int res, std::uint32_t flags) noexcept;
  static void on_close(Completion* c, int res, std::uint32_t flags) noexcept;
  void maybe_arm() noexcept;
  void wake() noexcept;
  void maybe_free() noexcept;
  void push(Item it);
  void grow();
  void spill(std::uint16_t bid, std::uint32_t len) noexcept;
  void drop_queued() noexcept;

  std::vector<Item> queue_;  // ring of capacity queue_.size() (a power of two)
  std::uint32_t head_ = 0;
  std::uint32_t queued_ = 0;
  std::uint32_t leased_ = 0;     // leases out (ring or heap)
  std::uint32_t ring_held_ = 0;  // ring buffers queued or leased
  std::uint32_t spilled_ = 0;    // heap items queued or leased
  int end_ = 0;  // 0: open; kEof: EOF received; <0: -errno of the error that ended the stream
  bool armed_ = false;        // the multishot recv is in the kernel
  bool cancel_sent_ = false;  // and we asked it to stop
  bool started_ = false;      // recv() was called once
  bool throttled_ = false;    // hit the cap: single-shot recvs until all is given back
  bool close_pending_ = false;
  bool limited_ = false;  // the armed multishot recv carries a byte limit
  RecvOp* waiter_ = nullptr;
  SendAllAwaiter* sends_ = nullptr;  // send_all operations in flight (intrusive list)
  struct CloseOp : Completion {
    StreamCore* core = nullptr;
  } close_op_;
};

// The part of a RecvAwaiter the core talks to: an Operation parked in the core
// (at most one per stream). A timeout or a cancellation unparks it; queued
// data stays queued.
class RecvOp : public Operation {
 public:
  StreamCore* core;
  // Filled when woken: as StreamCore::pop returns (kData: in data/len/bid).
  int status = 0;
  std::byte* data = nullptr;
  std::uint32_t len = 0;
  std::uint16_t bid = 0;
  bool filled = false;  // the core filled the fields above

  // The core hands over what it filled in.
  void deliver() noexcept {
    filled = true;
    complete(false);
  }

 protected:
  explicit RecvOp(StreamCore* c) noexcept : core(c) {}
  RecvOp(RecvOp&& o) noexcept : Operation(std::move(o)), core(o.core) {}
  ~RecvOp() {
    if (pending()) core->unpark(this);
  }
  template <class P>
  bool prepare_recv(std::coroutine_handle<P> h) {
    return prepare<&RecvOp::leave>(h, WaitKind::recv, core);
  }

 private:
  static bool leave(Operation* op) noexcept {
    auto* self = static_cast<RecvOp*>(op);
    self->core->unpark(self);
    return true;
  }
};

}  // namespace coring::net::detail
