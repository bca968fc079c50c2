/* test-gw-config — `ferry serve` configuration values refused where they are read, with
 * the file, the line and the key (gw/config.c, docs/gateway.md "Configuration"). */
#include "test.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw/config.h"

/* A key given twice kept the later value silently; an indented line (inih continues the
 * key above with it) did the same. profile_node without profile was ignored: the node
 * ran as the built-in node of its role. */
TEST(gw_config_refuses_a_key_set_twice_and_a_profile_node_without_profile)
{
    static const struct { const char *text, *want; } bad[] = {
        {"[server]\nworkers = 2\nworkers = 4\n[node a]\nurl = http://x\n",
         "c.ini:3: [server] workers: set again (first at line 2"},
        {"[node a]\nurl = http://x\n  http://y\n", "c.ini:3: [node a] url: set again"},
        {"[node a]\nurl = http://x\n[node b]\nurl = http://y\nmax_inflight = 1\n"
         "max_inflight = 2\n", "c.ini:6: [node b] max_inflight: set again (first at line 5"},
        {"[node a]\nurl = http://x\nprofile_node = edge-3090\n",
         "c.ini:3: node 'a': profile_node = 'edge-3090' needs profile = FILE or FOLDER"},
        /* the checks across keys name the line of the key they are about (they named the
         * file alone) */
        {"[node a]\nurl = http://x\n[shadow]\nreference = b\n",
         "c.ini:4: [shadow] reference = 'b': no node of that name or model"},
        {"[node a]\nurl = http://x\n[node b]\nrole = cloud\n", "c.ini:4: node 'b': url is missing"},
        /* a node's name goes into headers and model files: a space made every state
         * save fail ("name ... has white space"), a byte over 0x7e is not a header's */
        {"[node my edge]\nurl = http://x\n", "[node my edge]: a node name is printable ASCII"},
        {"[node r\xc3\xa9seau]\nurl = http://x\n", "a node name is printable ASCII without spaces"},
    };
    struct gw_config *c = malloc(sizeof *c);
    CHECK(c != NULL);
    if (!c) return;
    char err[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = gw_config_load_string(bad[i].text, "c.ini", c, err, sizeof err);
        if (rc == 0 || !strstr(err, bad[i].want))
            test_fail(__FILE__, __LINE__, "%s: rc %d, '%s'", bad[i].want, rc, err);
    }
    /* api_key is the key meant to repeat; the same key in two sections is two keys */
    CHECK_EQ_INT(gw_config_load_string("[server]\napi_key = k1\napi_key = k2\n[node a]\n"
                                       "url = http://x\nrtt_ms = 1\n[node b]\nurl = http://y\n"
                                       "rtt_ms = 2\n", "ok.ini", c, err, sizeof err), 0);
    CHECK_EQ_INT(c->nclient_keys, 2);
    CHECK_EQ_INT(c->nnodes, 2);
    CHECK_EQ_INT(gw_config_load_string("[node edge-3090.lan_1:a/b@c+d\"q\\]\nurl = http://x\n",
                                       "ok.ini", c, err, sizeof err), 0);
    free(c);
}

/* The policy and the profiles are checked when the gateway starts: the error names the
 * line of [policy] name or params, profile or profile_node (it named the file alone, or
 * without --check nothing of the config at all). */
TEST(gw_config_policy_and_profile_errors_name_their_line)
{
    char path[600], args[800];
    snprintf(path, sizeof path, "%s", test_tmp_path("p.ini"));
    CHECK(test_write_file(path, "[node a]\nurl = http://127.0.0.1:9\n[policy]\n"
                                "name = no-such\n") == 0);
    snprintf(args, sizeof args, "serve --check -c '%s'", path);
    CHECK_CLI(args, 1, "p.ini:4: [policy] name = 'no-such': no such policy");
    CHECK(test_write_file(path, "[node a]\nurl = http://127.0.0.1:9\n[policy]\n"
                                "name = random\nparams = p_cloud\n") == 0);
    CHECK_CLI(args, 1, "p.ini:5: [policy] params: ");
    /* the profiles are read when the gateway starts: the key's line too */
    CHECK(test_write_file(path, "[node a]\nurl = http://127.0.0.1:9\nprofile = data/profiles\n"
                                "profile_node = no-such\n") == 0);
    CHECK_CLI(args, 1, "p.ini:4: node 'a': profile = 'data/profiles': node 'no-such' is not "
                       "defined");
    CHECK(test_write_file(path, "[node a]\nurl = http://127.0.0.1:9\nprofile = no-such-dir\n")
          == 0);
    CHECK_CLI(args, 1, "p.ini:3: node 'a': profile = 'no-such-dir': No such file");
}
