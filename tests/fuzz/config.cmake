# fuzz_config: the mfad.conf parser. Included by tests/fuzz/CMakeLists.txt (uses its
# MFA_FUZZ_FLAGS and mfa_common_fuzz); config.cpp and the [Redis] Address parser it uses are
# compiled here, instrumented.
add_executable(fuzz_config ${CMAKE_CURRENT_LIST_DIR}/fuzz_config.cpp
                           ${PROJECT_SOURCE_DIR}/daemon/config.cpp
                           ${PROJECT_SOURCE_DIR}/daemon/redis_address.cpp)
target_compile_options(fuzz_config PRIVATE ${MFA_FUZZ_FLAGS} -fsanitize=fuzzer)
target_link_options(fuzz_config PRIVATE ${MFA_FUZZ_FLAGS} -fsanitize=fuzzer)
target_link_libraries(fuzz_config PRIVATE mfa_common_fuzz PkgConfig::INIH)
# Regression: every seed runs once under the sanitizers (no mutation).
add_test(NAME fuzz_config_seeds
         COMMAND fuzz_config -runs=0 -dict=${CMAKE_CURRENT_LIST_DIR}/config.dict
                 ${CMAKE_CURRENT_LIST_DIR}/seeds/config)
