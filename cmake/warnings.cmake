# Warnings are errors on the project's own targets (never on consumers').
function(maskattn_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror)
endfunction()
