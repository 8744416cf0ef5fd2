"""labctl/families/cmna/characterisation"""
