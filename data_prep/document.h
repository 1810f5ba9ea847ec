// Documents as the ingest readers produce them: plain text, or a conversation for
// instruction data. A document carries where it came from ("file:line" or "file:record N")
// so later stages can name it in messages.
#ifndef MEDTUNE_DATA_PREP_DOCUMENT_H
#define MEDTUNE_DATA_PREP_DOCUMENT_H

#include <stddef.h>

typedef enum { CHAT_ROLE_SYSTEM, CHAT_ROLE_USER, CHAT_ROLE_ASSISTANT } chat_role;

typedef struct {
    chat_role role;
    char *content;
    // Alpaca's separate `input` on a user message (NULL otherwise). Templates other than
    // alpaca append it to the instruction after a blank line.
    char *input;
} chat_message;

typedef struct {
    chat_message *msgs;
    size_t n, cap;
} conversation;

int conversation_add(conversation *c, chat_role role, const char *content, size_t len,
                     const char *input, size_t input_len);
// Appends copies of src's messages to dst; adds their text bytes to *bytes when not NULL.
int conversation_append(conversation *dst, const conversation *src, size_t *bytes);
void conversation_free(conversation *c);
const char *chat_role_name(chat_role r);

typedef struct {
    int is_chat;
    char *text;  // text documents (NUL-terminated)
    size_t len;
    conversation conv;  // chat documents; the prompt of a preference pair
    // Preference pairs (is_pair, with is_chat): the two responses that follow `conv`, each
    // ending with an assistant message.
    int is_pair;
    conversation chosen, rejected;
    char where[320];    // "file:line" of the record, for messages
} document;

void document_free(document *d);

#endif
