# cmake -DPROGRAM=prog "-DARGS=arg arg" -DOUTPUT=file -P run_to_file.cmake: runs PROGRAM with ARGS
# (no shell) and writes its standard output to OUTPUT; fails the build when it fails. Used for
# the completion and the man page, which the built leakscope writes from its own CLI definition.
separate_arguments(args UNIX_COMMAND "${ARGS}")
execute_process(COMMAND ${PROGRAM} ${args} OUTPUT_FILE ${OUTPUT}.tmp RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} ${ARGS} failed: ${rc}")
endif()
file(RENAME ${OUTPUT}.tmp ${OUTPUT})
