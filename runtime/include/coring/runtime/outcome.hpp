// Outcome<T>: how a task ended, as a value -- it returned a T, it failed with an
// exception, or it was cancelled. What `co_await handle.join()` gives.
//
// - has_value() / failed() / cancelled(): exactly one is true.
// - value(): the T; for a failed task it rethrows the task's exception, for a
//   cancelled one it throws TaskCancelled.
// - error(): the exception of a failed task (null otherwise).
#pragma once

#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace coring {

// Thrown where a joined task's value is asked for but the task was cancelled.
class TaskCancelled : public std::exception {
 public:
  explicit TaskCancelled(std::string_view task_name = {})
      : what_(task_name.empty() ? std::string("coring: the task was cancelled")
                                : "coring: task '" + std::string(task_name) + "' was cancelled") {}
  const char* what() const noexcept override { return what_.c_str(); }

 private:
  std::string what_;
};

enum class TaskEnd : unsigned char { returned, failed, cancelled };

namespace detail {
class OutcomeBase {
 public:
  [[nodiscard]] TaskEnd end() const noexcept { return end_; }
  [[nodiscard]] bool has_value() const noexcept { return end_ == TaskEnd::returned; }
  [[nodiscard]] bool failed() const noexcept { return end_ == TaskEnd::failed; }
  [[nodiscard]] bool cancelled() const noexcept { return end_ == TaskEnd::cancelled; }
  explicit operator bool() const noexcept { return has_value(); }
  [[nodiscard]] const std::exception_ptr& error() const noexcept { return error_; }

 protected:
  OutcomeBase(TaskEnd end, std::exception_ptr error) noexcept
      : error_(std::move(error)), end_(end) {}
  void check() const {
    if (end_ == TaskEnd::failed) std::rethrow_exception(error_);
    if (end_ == TaskEnd::cancelled) throw TaskCancelled();
  }

 private:
  std::exception_ptr error_;
  TaskEnd end_;
};
}  // namespace detail

template <class T>
class [[nodiscard]] Outcome : public detail::OutcomeBase {
 public:
  static Outcome from_value(T v) { return Outcome(std::move(v)); }
  static Outcome from_error(std::exception_ptr e) noexcept {
    return Outcome(TaskEnd::failed, std::move(e));
  }
  static Outcome from_cancel() noexcept { return Outcome(TaskEnd::cancelled, nullptr); }

  T& value() & {
    check();
    return *value_;
  }
  T&& value() && {
    check();
    return std::move(*value_);
  }

 private:
  explicit Outcome(T v) : OutcomeBase(TaskEnd::returned, nullptr), value_(std::move(v)) {}
  Outcome(TaskEnd end, std::exception_ptr e) noexcept : OutcomeBase(end, std::move(e)) {}
  std::optional<T> value_;
};

template <>
class [[nodiscard]] Outcome<void> : public detail::OutcomeBase {
 public:
  static Outcome from_value() noexcept { return Outcome(TaskEnd::returned, nullptr); }
  static Outcome from_error(std::exception_ptr e) noexcept {
    return Outcome(TaskEnd::failed, std::move(e));
  }
  static Outcome from_cancel() noexcept { return Outcome(TaskEnd::cancelled, nullptr); }

  void value() const { check(); }

 private:
  Outcome(TaskEnd end, std::exception_ptr e) noexcept : OutcomeBase(end, std::move(e)) {}
};

}  // namespace coring
