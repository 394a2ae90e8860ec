#include "coring/sync/wait_list.hpp"

#include <fmt/core.h>

#include <cstdio>
#include <stdexcept>
#include <string>

namespace coring {

void throw_broken(const char* what) {
  throw std::logic_error(std::string("coring: ") + what +
                         " destroyed while tasks were waiting on it");
}

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
