/* reactor/pollmgr-t.h — types only: how the poll manager picks a sub-reactor
 * for new work. The one spelling of the poller balances: config/config.h
 * stores this enum and config_parse.c holds the names in its order. */
#pragma once

enum pollmgr_balance {
    POLLMGR_ROUND_ROBIN,  /* "round_robin" */
    POLLMGR_RANDOM,       /* "random" */
    POLLMGR_LEAST_LOADED, /* "least_loaded": fewest registered fdops */
};
