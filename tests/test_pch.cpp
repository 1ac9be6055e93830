// Empty: the translation unit that builds the tests' precompiled header (CMakeLists.txt).
