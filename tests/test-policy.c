#include "test.h"
#include "policy/policy.h"

TEST(policy_registry_has_baselines)
{
    CHECK(pol_find("cloud-only") != NULL);
    CHECK(pol_find("nope") == NULL);
}
