"""neurrator.preprocess"""
