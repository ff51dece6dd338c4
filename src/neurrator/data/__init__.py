"""neurrator.data"""
