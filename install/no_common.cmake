# Injected into llama.cpp's own CMake project (CMAKE_PROJECT_llama.cpp_INCLUDE) by install/llama_build.py.
# llama-cpp-python's CMakeLists forces LLAMA_BUILD_COMMON=ON in the cache, but the Python package never loads
# libllama-common (argument parsing, chat templates, an HTTP client for downloads): about 45% of the compile.
# A normal variable set here, right after llama.cpp's project(), shadows that cache entry for llama.cpp's own
# option() (policy CMP0077), so common and its vendored HTTP library are neither built nor installed.
set(LLAMA_BUILD_COMMON OFF)
