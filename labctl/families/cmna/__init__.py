"""labctl/families/cmna"""
