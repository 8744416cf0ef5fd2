"""labctl/families/cmna/training"""
