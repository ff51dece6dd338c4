"""neurrator.vision"""
