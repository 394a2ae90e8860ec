#include "coring/actor/exchange.hpp"

#include <stdexcept>
#include <string>
#include <unordered_map>

namespace coring::detail {

namespace {
struct Registry {
  std::unordered_map<std::string, std::unique_ptr<ExchangeBase>> by_name;
};
Registry& registry() {
  thread_local Registry r;
  return r;
}
}  // namespace

ExchangeBase* find_exchange(std::string_view name) {
  Registry& r = registry();
  auto it = r.by_name.find(std::string(name));
  return it == r.by_name.end() ? nullptr : it->second.get();
}

ExchangeBase& add_exchange(std::string_view name, std::unique_ptr<ExchangeBase> x) {
  return *(registry().by_name[std::string(name)] = std::move(x));
}

void throw_exchange_type(std::string_view name, const std::type_info& has,
                         const std::type_info& asked) {
  throw std::logic_error("coring: get_exchange(\"" + std::string(name) +
                         "\") was made for messages of type " + has.name() + ", not " +
                         asked.name() + ": one name, one message type");
}

}  // namespace coring::detail
