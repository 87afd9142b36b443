# `maskattn embed`'s output files and stdin, run by CTest as a script:
#   cmake -DCLI=<maskattn binary> -DMODEL=<model folder> -DWORK_DIR=<scratch dir>
#         -P embed_outputs.cmake
# Writes two sentences' embeddings as .jsonl and .npy and checks the files
# (2 JSON lines of "sentence" + a dim-long "embedding"; a float32 (2, dim)
# .npy of the right size); reads the same sentences from stdin (--file -,
# CRLF) and checks it writes the same .jsonl, and that an empty line is a
# sentence of its own; checks that --pad prints the table --pack does.
foreach(var CLI MODEL WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "embed_outputs.cmake: -D${var}=... is required")
  endif()
endforeach()

set(sentences "the cat sat on the mat." "A big red dog ran!")
set(dim 16)

# embed(<output variable> [INPUT <file>] <args>...): runs `CLI embed --model
# MODEL <args>`, stops the script unless it exits 0, returns its stdout.
function(embed out)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "INPUT" "")
  set(input)
  if(arg_INPUT)
    set(input INPUT_FILE ${arg_INPUT})
  endif()
  execute_process(COMMAND ${CLI} embed --model ${MODEL} ${arg_UNPARSED_ARGUMENTS} ${input}
    RESULT_VARIABLE rc OUTPUT_VARIABLE stdout ERROR_VARIABLE stderr)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): embed ${arg_UNPARSED_ARGUMENTS}\n${stdout}${stderr}")
  endif()
  set(${out} "${stdout}" PARENT_SCOPE)
endfunction()

function(check condition_text)
  if(NOT ${ARGN})
    message(FATAL_ERROR "embed_outputs.cmake: ${condition_text}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

# .jsonl: one object per sentence, in order.
embed(ignored -o ${WORK_DIR}/e.jsonl ${sentences})
check("${WORK_DIR}/e.jsonl was not written" EXISTS ${WORK_DIR}/e.jsonl)
file(STRINGS ${WORK_DIR}/e.jsonl lines)
list(LENGTH lines n)
check("e.jsonl has ${n} lines, not 2" n EQUAL 2)
foreach(i RANGE 1)
  list(GET lines ${i} line)
  list(GET sentences ${i} want)
  string(JSON got ERROR_VARIABLE err GET "${line}" sentence)
  check("line ${i} of e.jsonl: ${err} ${line}" err STREQUAL "NOTFOUND")
  check("line ${i} of e.jsonl: sentence \"${got}\", not \"${want}\"" got STREQUAL want)
  string(JSON len LENGTH "${line}" embedding)
  check("line ${i} of e.jsonl: ${len} values, not ${dim}" len EQUAL dim)
  string(JSON first GET "${line}" embedding 0)
  check("line ${i} of e.jsonl: embedding[0] = ${first}, not a number"
    first MATCHES "^-?[0-9.]+(e-?[0-9]+)?$")
endforeach()

# .npy: NumPy v1.0, float32 little-endian, C order, (2, dim), then the data.
embed(ignored -o ${WORK_DIR}/e.npy ${sentences})
check("${WORK_DIR}/e.npy was not written" EXISTS ${WORK_DIR}/e.npy)
file(READ ${WORK_DIR}/e.npy magic LIMIT 10 HEX)
check("e.npy does not start with \\x93NUMPY v1.0: ${magic}" magic MATCHES "^934e554d505901")
string(SUBSTRING "${magic}" 16 2 lo)
string(SUBSTRING "${magic}" 18 2 hi)
math(EXPR header_len "0x${hi}${lo}")
file(READ ${WORK_DIR}/e.npy header OFFSET 10 LIMIT ${header_len})
check("e.npy header: ${header}" header MATCHES "'descr': '<f4'")
check("e.npy header: ${header}" header MATCHES "'fortran_order': False")
check("e.npy header: ${header}" header MATCHES "'shape': \\(2, ${dim}\\)")
file(SIZE ${WORK_DIR}/e.npy size)
math(EXPR want_size "10 + ${header_len} + 2 * ${dim} * 4")
check("e.npy is ${size} bytes, not ${want_size}" size EQUAL want_size)

# The same sentences on stdin (CRLF line ends).
list(JOIN sentences "\r\n" text)
file(WRITE ${WORK_DIR}/sentences.txt "${text}\r\n")
embed(ignored INPUT ${WORK_DIR}/sentences.txt --file - -o ${WORK_DIR}/stdin.jsonl)
file(READ ${WORK_DIR}/e.jsonl from_args)
file(READ ${WORK_DIR}/stdin.jsonl from_stdin)
check("--file - wrote\n${from_stdin}\nnot\n${from_args}" from_stdin STREQUAL from_args)

# An empty line is a sentence too: row i is line i + 1.
list(JOIN sentences "\n\n" text)
file(WRITE ${WORK_DIR}/with_empty.txt "${text}\n")
embed(ignored INPUT ${WORK_DIR}/with_empty.txt --file - -o ${WORK_DIR}/with_empty.jsonl)
file(STRINGS ${WORK_DIR}/with_empty.jsonl lines)
list(LENGTH lines n)
check("with_empty.jsonl has ${n} lines, not 3" n EQUAL 3)
list(GET lines 1 line)
string(JSON got GET "${line}" sentence)
check("line 1 of with_empty.jsonl: sentence \"${got}\", not \"\"" "x${got}" STREQUAL "x")

# JSON lines on stdout with --format jsonl and no -o.
embed(stdout --format jsonl ${sentences})
check("--format jsonl printed\n${stdout}\nnot\n${from_args}" stdout STREQUAL from_args)

# --pad: the same table as --pack (4 decimals; they differ by ~1e-7).
embed(packed --pack ${sentences})
embed(padded --pad ${sentences})
check("--pad printed\n${padded}\n--pack printed\n${packed}" padded STREQUAL packed)
check("no table: ${packed}" packed MATCHES "2 sentences, ${dim} dimensions")

file(REMOVE_RECURSE ${WORK_DIR})
message(STATUS "embed outputs: .jsonl, .npy, stdin, --format jsonl and --pad all good")
