# cmake -DCOMMAND="prog;arg;..." -DOUTPUT=file -P run_to_file.cmake: runs COMMAND (no shell) and
# writes its standard output to OUTPUT; fails the build when it fails. Used for the completion
# and the man page, which the built leakscope writes from its own CLI definition.
execute_process(COMMAND ${COMMAND} OUTPUT_FILE ${OUTPUT}.tmp RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${COMMAND} failed: ${rc}")
endif()
file(RENAME ${OUTPUT}.tmp ${OUTPUT})
