# admin/dashboard_embed.cmake — run at build time (cmake -DIN=... -DOUT=... -P):
# turns admin/dashboard.html into a C file holding the page's bytes and its
# Content-Security-Policy (admin/dashboard_page.h declares both). The page
# stays a real HTML file in the repo; the binary needs nothing at run time.
#
# The policy allows the page's one inline <style> and one inline <script> by
# their SHA-256 (not 'unsafe-inline'): any other script, an injected one
# included, does not run. The page talks only to its own origin
# (connect-src 'self'), loads nothing else, may not be framed (its drain
# buttons must not be clickjacked) and submits no form anywhere.
cmake_minimum_required(VERSION 3.20)

if(NOT IN OR NOT OUT)
  message(FATAL_ERROR "usage: cmake -DIN=dashboard.html -DOUT=dashboard_page.c -P ${CMAKE_CURRENT_LIST_FILE}")
endif()

file(READ "${IN}" page)

# The text between the one <tag> and its </tag>, exactly as the browser hashes it.
function(inline_block tag out)
  string(FIND "${page}" "<${tag}>" open)
  string(FIND "${page}" "<${tag}>" open_last REVERSE)
  string(FIND "${page}" "</${tag}>" close)
  if(open EQUAL -1 OR close EQUAL -1 OR NOT open EQUAL open_last)
    message(FATAL_ERROR "${IN}: expected exactly one <${tag}> ... </${tag}> (written without attributes)")
  endif()
  string(LENGTH "<${tag}>" taglen)
  math(EXPR start "${open} + ${taglen}")
  math(EXPR len "${close} - ${start}")
  string(SUBSTRING "${page}" ${start} ${len} body)
  set(${out} "${body}" PARENT_SCOPE)
endfunction()

# CSP wants base64 of the raw digest; CMake gives hex. 3 bytes -> 4 characters.
function(hex_to_base64 hex out)
  set(abc "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
  string(LENGTH "${hex}" n)
  set(b64 "")
  set(i 0)
  while(i LESS n)
    math(EXPR left "${n} - ${i}")
    if(left GREATER_EQUAL 6)
      set(take 6)
    else()
      set(take ${left})
    endif()
    string(SUBSTRING "${hex}" ${i} ${take} chunk)
    # pad the group to 3 bytes with zero bytes; the '=' below marks them
    if(take EQUAL 2)
      set(chunk "${chunk}0000")
      set(chars 2)
    elseif(take EQUAL 4)
      set(chunk "${chunk}00")
      set(chars 3)
    else()
      set(chars 4)
    endif()
    math(EXPR v "0x${chunk}")
    foreach(k RANGE 3)
      if(k LESS chars)
        math(EXPR shift "18 - 6 * ${k}")
        math(EXPR idx "(${v} >> ${shift}) & 63")
        string(SUBSTRING "${abc}" ${idx} 1 c)
        string(APPEND b64 "${c}")
      else()
        string(APPEND b64 "=")
      endif()
    endforeach()
    math(EXPR i "${i} + 6")
  endwhile()
  set(${out} "${b64}" PARENT_SCOPE)
endfunction()

inline_block(style style_text)
inline_block(script script_text)
string(SHA256 style_hex "${style_text}")
string(SHA256 script_hex "${script_text}")
hex_to_base64(${style_hex} style_b64)
hex_to_base64(${script_hex} script_b64)

set(csp "default-src 'none'; script-src 'sha256-${script_b64}'; style-src 'sha256-${style_b64}'; connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR size "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# a line break every 16 bytes keeps the file readable in an editor
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n" bytes "${bytes}")

file(WRITE "${OUT}.tmp"
"/* Generated from admin/dashboard.html by admin/dashboard_embed.cmake: do not edit. */
#include \"admin/dashboard_page.h\"

const char dashboard_page[] = {
${bytes}0x00};
const size_t dashboard_page_len = ${size};
const char dashboard_csp[] = \"${csp}\";
")
# Only a changed page rewrites the file (and rebuilds what depends on it).
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
file(REMOVE "${OUT}.tmp")
