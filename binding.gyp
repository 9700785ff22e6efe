{
  "variables": {
    "has_libpmem%": "<!(pkg-config --exists libpmem && echo 1 || echo 0)"
  },
  "target_defaults": {
    "sources": ["native/chronotier.cc"],
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS", "NAPI_VERSION=8"],
    "cflags_cc": ["-O2", "-std=c++17", "-fvisibility=hidden"]
  },
  "targets": [
    {
      "target_name": "chronotier_native",
      "conditions": [
        ["has_libpmem==1", {
          "defines": ["CHRONOTIER_WITH_LIBPMEM"],
          "cflags_cc": ["<!@(pkg-config --cflags libpmem)"],
          "libraries": ["<!@(pkg-config --libs libpmem)"]
        }]
      ]
    },
    {
      "target_name": "chronotier_native_msync"
    }
  ]
}
