#include "coring/sync/wait_list.hpp"

#include <fmt/core.h>

#include <cstdio>

namespace coring {

WaitList::~WaitList() {
  if (head_ == nullptr) return;
  fmt::print(stderr, "coring: {} destroyed while {} task(s) were waiting on it\n", what_, size());
  std::fflush(stderr);
  while (WaitNode* n = head_) {
    n->broken_ = what_;
    wake(*n);
  }
}

}  // namespace coring
