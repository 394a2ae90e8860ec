#include <catch2/catch.hpp>
#include <coring/coring.hpp>
