"""``labctl report``: a characterisation file summarised as one HTML page and one PNG.

``contents`` reads the file and derives every number shown, ``figures`` draws
one matplotlib figure per topic, ``page`` writes the files. Importing this
package pulls in matplotlib, so commands import it only when a report is asked for.
"""
