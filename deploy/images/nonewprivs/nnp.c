/* nnp: prints the effective uid. The e2e suite runs it (setuid root) as a non-root user to see
 * whether allowPrivilegeEscalation let the setuid bit take effect. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	printf("Effective uid: %d\n", (int)geteuid());
	return 0;
}
