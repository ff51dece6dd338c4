"""neurrator.encoder"""
