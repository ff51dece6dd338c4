"""neurrator.evaluate"""
