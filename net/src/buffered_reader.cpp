// Implementation notes. The unread bytes are joined_[joined_off_..] followed by
// lease_[lease_off_..]. A call hands out a view into one of the two and only
// advances the offset; the next call's begin() drops what was handed out (it
// compacts joined_, gives a used-up lease back), so the view stays valid until
// then. take() never suspends: every suspension is one recv in read_slow(), and
// whatever it brings becomes lease_ before anything else runs, so a cancel or
// a timeout at that recv leaves every byte in the reader.
#include "coring/net/buffered_reader.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <utility>

namespace coring::net {

namespace {

std::string_view strip_cr(std::string_view line, bool strip) noexcept {
  if (strip && !line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

}  // namespace

namespace detail {
ReadInProgress::~ReadInProgress() {
  if (reader != nullptr) reader->busy_ = nullptr;
}
}  // namespace detail

BufferedReader::~BufferedReader() {
  if (busy_ != nullptr) {
    std::fputs("coring: BufferedReader destroyed while a read of it is suspended\n", stderr);
    busy_->reader = nullptr;
  }
}

bool ReadAwaiter::await_ready_slow() {
  reader_->begin();
  if (reader_->take(req_, result_)) return true;
  if (reader_->eof_) {
    result_ = reader_->finish_at_end(req_);
    return true;
  }
  slow_ = reader_->read_slow(req_);
  return false;
}

void BufferedReader::begin() {
  if (busy_ != nullptr) throw std::logic_error("BufferedReader: a read is already in progress");
  if (joined_off_ == joined_.size()) {
    joined_.clear();
    joined_off_ = 0;
  } else if (joined_off_ != 0) {
    joined_.erase(0, joined_off_);
    joined_off_ = 0;
  }
  if (lease_off_ == lease_.size() && lease_off_ != 0) {
    lease_.reset();
    lease_off_ = 0;
  }
}

bool BufferedReader::take(detail::ReadRequest& req, ReadResult& out) {
  using Kind = detail::ReadRequest::Kind;
  const std::string_view joined = std::string_view(joined_).substr(joined_off_);
  const std::string_view fresh = lease_.as_string_view().substr(lease_off_);

  switch (req.kind) {
    case Kind::some: {
      const std::string_view from = !joined.empty() ? joined : fresh;
      if (from.empty()) return false;
      const std::size_t n = std::min(from.size(), std::max<std::size_t>(req.limit, 1));
      out.data = from.substr(0, n);
      (!joined.empty() ? joined_off_ : lease_off_) += n;
      return true;
    }

    case Kind::exact: {
      const std::size_t n = req.limit;
      if (joined.empty() && fresh.size() >= n) {
        out.data = fresh.substr(0, n);
        lease_off_ += n;
        return true;
      }
      const std::size_t need = n - std::min(n, joined.size());
      const std::size_t move = std::min(need, fresh.size());
      joined_.append(fresh.substr(0, move));
      lease_off_ += move;
      if (joined_.size() - joined_off_ < n) return false;
      out.data = std::string_view(joined_).substr(joined_off_, n);
      joined_off_ += n;
      return true;
    }

    case Kind::until: {
      // The joined bytes first (a previous read may have left a delimiter there).
      if (req.scanned < joined.size()) {
        const std::size_t at = joined.find(req.delim, req.scanned);
        if (at != std::string_view::npos) {
          if (at > req.limit) break;
          out.data = strip_cr(joined.substr(0, at), req.strip_cr);
          joined_off_ += at + 1;
          return true;
        }
        req.scanned = joined.size();
      }
      if (joined.size() > req.limit) break;
      const std::size_t at = fresh.find(req.delim);
      if (at != std::string_view::npos) {
        if (joined.size() + at > req.limit) break;
        if (joined.empty()) {  // the whole line is in this buffer: no copy
          out.data = strip_cr(fresh.substr(0, at), req.strip_cr);
        } else {
          joined_.append(fresh.substr(0, at));
          out.data = strip_cr(std::string_view(joined_).substr(joined_off_), req.strip_cr);
          joined_off_ = joined_.size();
        }
        lease_off_ += at + 1;
        return true;
      }
      if (joined.size() + fresh.size() > req.limit) break;
      joined_.append(fresh);
      lease_off_ += fresh.size();
      req.scanned = joined_.size() - joined_off_;
      return false;
    }
  }
  // The line is longer than its limit: consume nothing.
  out.error = std::make_error_code(std::errc::message_size);
  return true;
}

ReadResult BufferedReader::finish_at_end(const detail::ReadRequest& req) {
  (void)req;
  // take() failed, so everything unread is in joined_ (the lease's bytes were
  // moved there): hand it out as the partial record.
  ReadResult out;
  out.ended = true;
  out.data = std::string_view(joined_).substr(joined_off_);
  joined_off_ = joined_.size();
  return out;
}

Task<ReadResult> BufferedReader::read_slow(detail::ReadRequest req) {
  detail::ReadInProgress busy{this};
  busy_ = &busy;

  const bool timed = req.timeout != kNoTimeout;
  const TimePoint deadline = timed ? coring::detail::deadline_after(req.timeout) : TimePoint{};
  ReadResult out;
  for (;;) {
    Duration left = kNoTimeout;
    if (timed) left = std::max(Duration::zero(), deadline - coring::now());
    Received r = co_await stream_->recv(left);
    if (busy.reader == nullptr) {
      throw std::logic_error("BufferedReader destroyed while a read of it was suspended");
    }
    if (r.error) {
      out.error = r.error;
      co_return out;
    }
    if (r.eof()) {
      eof_ = true;
      co_return finish_at_end(req);
    }
    // take() left lease_ used up (it moves what it cannot hand out to joined_).
    lease_ = std::move(r.buffer);
    lease_off_ = 0;
    if (take(req, out)) co_return out;
  }
}

std::string BufferedReader::take_buffered() {
  begin();
  std::string out = joined_.substr(joined_off_);
  out.append(lease_.as_string_view().substr(lease_off_));
  joined_.clear();
  joined_off_ = 0;
  lease_.reset();
  lease_off_ = 0;
  return out;
}

}  // namespace coring::net
