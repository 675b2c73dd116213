/* tests/unit/check_main.h — the main() every libcheck suite shares: runs the
 * suite built by the file's make_suite() and exits non-zero on any failure. */
#pragma once

#include <check.h>
#include <stdlib.h>

static Suite *make_suite(void);

int main(void)
{
    SRunner *sr = srunner_create(make_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
