"""neurrator.narrate"""
