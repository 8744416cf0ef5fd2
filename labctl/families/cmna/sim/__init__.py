"""labctl/families/cmna/sim"""
