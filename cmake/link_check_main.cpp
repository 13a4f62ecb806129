// The program of the link checks (CMakeLists.txt): it does nothing; linking it with every object
// of one layer's library is the check.
int main() {
  return 0;
}
