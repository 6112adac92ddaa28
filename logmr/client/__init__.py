"""The querying side: what runs where a user types a command, never on a storage node.

It finds the live nodes, plans which node reads which record, fans map jobs out, and
reduces what comes back (grep's merge-sort, merged report panels, user jobs); in file
mode it runs the same map functions locally. It also runs a local cluster for trying
logmr out (``logmr cluster``).
"""
