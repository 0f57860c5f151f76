#include "tm_test.h"
int main(void) { return tm_test_done(); }
