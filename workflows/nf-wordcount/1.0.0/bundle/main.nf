#!/usr/bin/env nextflow
/*
 * nf-wordcount: count the words on every line of a text file shipped with this
 * pipeline and publish results/counts.tsv (line, words) and results/summary.tsv.
 *
 * Parameters come from -params-file (validated by the service against the
 * manifest's params_schema); the entry workflow repeats the essential checks.
 * Written for DSL2 and the strict syntax parser (no top-level statements, explicit
 * script: sections, lower-case `channel`, no implicit closure parameters).
 */

// A file name under data/ in this bundle (never a path).
params.input = 'field_notes.txt'
// Leave blank lines out of counts.tsv (line numbers still refer to the file).
params.skip_blank = false

process COUNT_WORDS {
    tag "${text.name}"
    publishDir 'results', mode: 'copy'

    input:
    path text
    val skip_blank

    output:
    path 'counts.tsv'

    script:
    def skip = skip_blank ? 1 : 0
    """
    awk -v skip=${skip} 'BEGIN { OFS = "\\t"; print "line", "words" }
        skip && NF == 0 { next }
        { print NR, NF }' ${text} > counts.tsv
    """
}

process SUMMARISE {
    publishDir 'results', mode: 'copy'

    input:
    path counts

    output:
    path 'summary.tsv'

    script:
    """
    awk 'BEGIN { FS = OFS = "\\t" }
        NR > 1 { lines += 1; total += \$2; if (\$2 > most) most = \$2 }
        END {
            print "lines", "words", "max_words_per_line", "mean_words_per_line"
            printf "%d\\t%d\\t%d\\t%.2f\\n", lines, total, most, lines ? total / lines : 0
        }' ${counts} > summary.tsv
    """
}

workflow {
    def shipped = ['field_notes.txt', 'pangrams.txt']
    if (!shipped.contains(params.input)) {
        error("params.input must be one of ${shipped.join(', ')}, not '${params.input}'")
    }
    def text = file("${projectDir}/data/${params.input}", checkIfExists: true)
    def skip_blank = params.skip_blank.toString().toBoolean()

    COUNT_WORDS(text, skip_blank)
    SUMMARISE(COUNT_WORDS.out)
}
