"""neurrator.analysis"""
