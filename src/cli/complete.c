/* cli/complete: `pgfleet completion bash|zsh` prints a completion script made from the
 * command and flag tables (and the host-side command words main.c passes in), so the
 * completion offers exactly the commands and options the parser takes. */
#include <stdio.h>
#include <string.h>

#include "cli/cli_int.h"
#include "util/util.h"

const char *const *cli__host_words;
size_t cli__nhost_words;

void cli_set_host_words(const char *const *words, size_t n)
{
    cli__host_words = words;
    cli__nhost_words = n;
}

/* The first words: the CLI's groups and the host commands, each once. */
static void first_words(util_buf *b)
{
    for (size_t i = 0; i < cli__ncmds; i++)
        if (i == 0 || strcmp(cli__cmds[i - 1].group, cli__cmds[i].group) != 0)
            util_buf_printf(b, "%s ", cli__cmds[i].group);
    for (size_t i = 0; i < cli__nhost_words; i++)
        util_buf_printf(b, "%s ", cli__host_words[i]);
    util_buf_puts(b, "help version");
}

static void flags_of(util_buf *b, const cli_cmd *k)
{
    for (int f = 0; f < FL__COUNT; f++)
        if (k->flags & F(f))
            util_buf_printf(b, "--%s ", cli__flags[f].name);
    util_buf_puts(b, "--help");
}

static void verbs_of(util_buf *b, const char *group)
{
    for (size_t i = 0; i < cli__ncmds; i++)
        if (strcmp(cli__cmds[i].group, group) == 0 && cli__cmds[i].verb)
            util_buf_printf(b, "%s%s", b->len ? " " : "", cli__cmds[i].verb);
}

/* What a shell's script is made of; the walk over the command table is one (script). */
typedef struct shell_fmt {
    const char *head;        /* %s: the first words */
    const char *completion;  /* the completion group's line: the shell names */
    const char *group_flags; /* a group without verbs: %s its name, %s its flags */
    const char *group_head;  /* a group with verbs: %s its name, %s its verbs */
    const char *verb_flags;  /* a verb of that group: %s the verb, %s its flags */
    const char *group_tail;
    const char *tail;
} shell_fmt;

static const shell_fmt bash_fmt = {
    .head = "# bash completion for pgfleet: source <(pgfleet completion bash)\n"
            "_pgfleet() {\n"
            "  local cur=${COMP_WORDS[COMP_CWORD]} w1=${COMP_WORDS[1]} w2=${COMP_WORDS[2]} "
            "opts=\n"
            "  if [ \"$COMP_CWORD\" -eq 1 ]; then\n"
            "    COMPREPLY=($(compgen -W \"%s\" -- \"$cur\")); return\n"
            "  fi\n"
            "  case \"$w1\" in\n",
    .completion = "    completion) COMPREPLY=($(compgen -W \"bash zsh\" -- \"$cur\")); return ;;\n",
    .group_flags = "    %s) opts=\"%s\" ;;\n",
    .group_head = "    %s)\n"
                  "      if [ \"$COMP_CWORD\" -eq 2 ]; then\n"
                  "        COMPREPLY=($(compgen -W \"%s\" -- \"$cur\")); return\n"
                  "      fi\n"
                  "      case \"$w2\" in\n",
    .verb_flags = "        %s) opts=\"%s\" ;;\n",
    .group_tail = "      esac ;;\n",
    .tail =
        "  esac\n"
        "  if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W \"$opts --help\" -- \"$cur\")); fi\n"
        "}\n"
        "complete -F _pgfleet pgfleet\n",
};

static const shell_fmt zsh_fmt = {
    .head = "#compdef pgfleet\n"
            "# zsh completion for pgfleet: save as _pgfleet on $fpath, or source it\n"
            "_pgfleet() {\n"
            "  if (( CURRENT == 2 )); then compadd -- %s; return; fi\n"
            "  case $words[2] in\n",
    .completion = "    completion) compadd -- bash zsh ;;\n",
    .group_flags = "    %s) [[ $PREFIX == -* ]] && compadd -- %s ;;\n",
    .group_head = "    %s)\n"
                  "      if (( CURRENT == 3 )); then compadd -- %s; return; fi\n"
                  "      case $words[3] in\n",
    .verb_flags = "        %s) [[ $PREFIX == -* ]] && compadd -- %s ;;\n",
    .group_tail = "      esac ;;\n",
    .tail = "  esac\n"
            "}\n"
            "if [[ $funcstack[1] == _pgfleet ]]; then _pgfleet \"$@\"; else compdef _pgfleet "
            "pgfleet; fi\n",
};

static void script(FILE *f, const shell_fmt *sh)
{
    util_buf w = {0};
    first_words(&w);
    fprintf(f, sh->head, w.s);
    util_buf_free(&w);
    for (size_t i = 0; i < cli__ncmds; i++) {
        const cli_cmd *k = &cli__cmds[i];
        if (i > 0 && strcmp(cli__cmds[i - 1].group, k->group) == 0)
            continue;
        util_buf b = {0};
        if (!k->verb) {
            flags_of(&b, k);
            if (strcmp(k->group, "completion") == 0)
                fputs(sh->completion, f);
            else
                fprintf(f, sh->group_flags, k->group, b.s);
            util_buf_free(&b);
            continue;
        }
        verbs_of(&b, k->group);
        fprintf(f, sh->group_head, k->group, b.s);
        util_buf_free(&b);
        for (size_t j = i; j < cli__ncmds && strcmp(cli__cmds[j].group, k->group) == 0; j++) {
            util_buf o = {0};
            flags_of(&o, &cli__cmds[j]);
            fprintf(f, sh->verb_flags, cli__cmds[j].verb, o.s);
            util_buf_free(&o);
        }
        fputs(sh->group_tail, f);
    }
    fputs(sh->tail, f);
}

int cli__completion(cli_ctx *c)
{
    const char *sh = c->pos[0];
    if (strcmp(sh, "bash") == 0)
        script(stdout, &bash_fmt);
    else if (strcmp(sh, "zsh") == 0)
        script(stdout, &zsh_fmt);
    else
        return cli__usage_error("completion takes bash or zsh, not '%s'", sh);
    return CLI_EXIT_OK;
}
