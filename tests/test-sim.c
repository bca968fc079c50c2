#include "test.h"
TEST(sim_placeholder) { CHECK(1); }
